//! Protocol commands and rules-file text as director operations, and back: what both the control protocol
//! (mapping.rs) and the daemon's rules file (daemon.rs) need, kept apart from either so they do not use each
//! other.

use rvs_api::{ApiError, Command, ErrorCode};
use rvs_core::{ConfigOp, Director, ServiceSnapshot};

/// Parse a rules file (`ipvsadm -S` format) into director operations, with the 1-based line of each.
pub fn rules_to_ops(text: &str) -> anyhow::Result<(Vec<ConfigOp>, Vec<usize>)> {
    let lines = rvs_api::rules::parse_lines(text, &rvs_api::resolve::SystemResolver::new())
        .map_err(|e| anyhow::anyhow!("{}", e.explain()))?;
    let (mut ops, mut lineno) = (Vec::new(), Vec::new());
    for (line, cmd) in &lines {
        let mut origin = Vec::new();
        let before = ops.len();
        commands_to_ops(std::slice::from_ref(cmd), &mut ops, &mut origin, None).map_err(|e| {
            let quoted = text.lines().nth(line - 1).unwrap_or("").trim();
            anyhow::anyhow!("line {line}: \"{quoted}\": {}", e.message)
        })?;
        lineno.extend(std::iter::repeat_n(*line, ops.len() - before));
    }
    Ok((ops, lineno))
}

/// The rules lines that replay `ops` (appended to the rules file after a change; see
/// [`rvs_api::rules::change_lines`]). Zeroing and timeouts are not part of a rules file.
pub fn ops_rules_lines(ops: &[ConfigOp]) -> String {
    let mut out = String::new();
    for op in ops {
        rvs_api::rules::change_lines(op, &mut out);
    }
    out
}

/// The rules text (`ipvsadm -S -n` format) of the director's configuration.
pub fn rules_text(d: &Director) -> String {
    let configured: Vec<ServiceSnapshot> = d
        .service_configs()
        .into_iter()
        .map(|(spec, dests)| ServiceSnapshot::configured(spec, &dests))
        .collect();
    rvs_api::rules::format(&configured)
}

/// Flatten change commands (batches included) into director operations, remembering for each operation the
/// index of the top-level command it came from (errors carry it) and the command itself (for error texts).
pub fn commands_to_ops<'a>(
    cmds: &'a [Command],
    ops: &mut Vec<ConfigOp>,
    origin: &mut Vec<(usize, &'a Command)>,
    top: Option<usize>,
) -> Result<(), ApiError> {
    for (i, c) in cmds.iter().enumerate() {
        let idx = top.unwrap_or(i);
        let op = match c {
            Command::Batch(inner) => {
                commands_to_ops(inner, ops, origin, Some(idx))?;
                continue;
            }
            other => other.config_op().ok_or_else(|| {
                ApiError::with_message(
                    ErrorCode::BadRequest,
                    format!("only configuration changes can be batched, not {other:?}"),
                )
                .at_index(idx)
            })?,
        };
        ops.push(op);
        origin.push((idx, c));
    }
    Ok(())
}

#[cfg(test)]
mod rules_tests {
    use super::*;
    use rvs_core::{DestSpec, ServiceSpec};

    const RULES: &str = "\
-A -t 198.51.100.100:80 -s rr
-a -t 198.51.100.100:80 -r 203.0.113.11:80 -m -w 1
-a -t 198.51.100.100:80 -r 203.0.113.12:80 -m -w 2
-A -u 198.51.100.100:53 -s wlc -p 600
-a -u 198.51.100.100:53 -r 203.0.113.11:53 -m -w 1
";

    #[test]
    fn save_load_round_trip() {
        let (ops, lines) = rules_to_ops(RULES).expect("valid rules");
        assert_eq!(lines, vec![1, 2, 3, 4, 5]);
        let d = Director::default();
        d.apply_batch(ops).expect("applies");
        let saved = rules_text(&d);
        let (again, _) = rules_to_ops(&saved).expect("saved text parses");
        let d2 = Director::default();
        d2.apply_batch(again).expect("applies again");
        let specs = |d: &Director| -> Vec<(ServiceSpec, Vec<DestSpec>)> {
            d.services()
                .into_iter()
                .map(|s| (s.spec, s.dests.into_iter().map(|x| x.spec).collect()))
                .collect()
        };
        assert_eq!(specs(&d), specs(&d2));
        assert_eq!(specs(&d).len(), 2);
        assert_eq!(rules_text(&d2), saved, "saving is stable");
        assert!(
            saved.contains("-A -u 198.51.100.100:53 -s wlc -p 600"),
            "{saved}"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = rules_to_ops("-A -t 198.51.100.100:80 -s rr\n-a -t 198.51.100.100:80 -x\n")
            .expect_err("bad line");
        assert!(e.to_string().starts_with("line 2:"), "{e}");
    }
}
