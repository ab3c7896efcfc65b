//! rvsadm's man page and completion definition from rvs-api's ipvsadm option table; each option's description is
//! the one `rvsadm -h` prints.

use rvs_api::ipvsadm::{OptionArg, OptionInfo, options, usage};

/// Options `rvsadm` takes beyond ipvsadm's table (handled before the ipvsadm parser).
const EXTRA: [(&str, &str); 1] = [(
    "json",
    "listings as JSON (rvsadm only), see rvs-api's README",
)];

/// Options the parser accepts that ipvsadm's help text (and so `rvsadm -h`) does not describe.
const NOT_IN_HELP: [(&str, &str); 1] = [("version", "print the version")];

/// The help text's sections: (title, [(long option, the help line's text after the option columns)]).
pub fn help_sections() -> Vec<(String, Vec<(String, String)>)> {
    let text = usage();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') && !line.starts_with("Usage") {
            out.push((line.trim_end_matches(':').to_owned(), Vec::new()));
            continue;
        }
        let Some(sec) = out.last_mut() else { continue };
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let long: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            // The description is the last column (after a run of two or more spaces).
            let desc = t
                .rsplit("  ")
                .next()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            sec.1.push((long, desc));
        } else if line.starts_with("      ") && !t.is_empty() {
            // A continuation line of the previous description.
            if let Some(last) = sec.1.last_mut() {
                last.1.push(' ');
                last.1.push_str(t);
            }
        }
    }
    out
}

/// The parser's options, `--list` once (with both `-L` and `-l`).
fn table() -> Vec<(OptionInfo, Vec<char>)> {
    let mut v: Vec<(OptionInfo, Vec<char>)> = Vec::new();
    for o in options() {
        match v.iter_mut().find(|(x, _)| x.long == o.long) {
            Some((_, shorts)) => shorts.extend(o.short),
            None => v.push((o, o.short.into_iter().collect())),
        }
    }
    v
}

fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

/// The man page (roff).
pub fn man_page() -> String {
    let mut sections = help_sections();
    sections.push((
        "Other options".to_owned(),
        NOT_IN_HELP
            .iter()
            .map(|(l, d)| ((*l).to_owned(), (*d).to_owned()))
            .collect(),
    ));
    let table = table();
    let mut m = String::new();
    m += &format!(
        ".TH RVSADM 8 \"\" \"rvs {}\" \"System Administration\"\n",
        env!("CARGO_PKG_VERSION")
    );
    m += ".SH NAME\nrvsadm \\- administer rvs's virtual services with ipvsadm's command line\n";
    m += ".SH SYNOPSIS\n.nf\n";
    let text = usage();
    let usage_lines = text
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .skip(1)
        .take_while(|l| !l.is_empty());
    for l in usage_lines {
        m += &roff_escape(l.trim());
        m += "\n";
    }
    m += ".fi\n.SH DESCRIPTION\n";
    m += "rvsadm speaks ipvsadm(8)'s command line and prints its formats byte for byte, talking to rvsd(8) over its \
control socket (\\fB/run/rvsd.sock\\fR, or \\fB$RVS_SOCKET\\fR) instead of the kernel. Rules files written by \
\\fBipvsadm \\-S\\fR are read by \\fBrvsadm \\-R\\fR and by rvsd itself.\n";
    for (title, entries) in &sections {
        if entries.is_empty() {
            continue;
        }
        m += &format!(".SH {}\n", title.to_uppercase());
        for (long, desc) in entries {
            let head = match table.iter().find(|(o, _)| o.long == long) {
                Some((o, shorts)) => {
                    let mut names: Vec<String> =
                        shorts.iter().map(|c| format!("\\fB\\-{c}\\fR")).collect();
                    names.push(format!("\\fB\\-\\-{}\\fR", roff_escape(long)));
                    let arg = match o.arg {
                        OptionArg::None => "",
                        OptionArg::Required => " \\fIvalue\\fR",
                        OptionArg::Optional => " [\\fIvalue\\fR]",
                    };
                    format!("{}{arg}", names.join(", "))
                }
                None => format!("\\fB\\-\\-{}\\fR", roff_escape(long)),
            };
            m += &format!(".TP\n{head}\n{}\n", roff_escape(desc));
        }
    }
    m += ".SH FILES\n.TP\n\\fB/etc/rvs/rules\\fR\nthe rules rvsd loads at start, writes back after changes and re-reads on SIGHUP\n";
    m += ".TP\n\\fB/run/rvsd.sock\\fR\nrvsd's control socket\n";
    m += ".SH SEE ALSO\nrvsd(8), ipvsadm(8)\n";
    m
}

/// A clap command with the same options, for shell completions (never used to parse).
pub fn command() -> clap::Command {
    let mut cmd = clap::Command::new("rvsadm")
        .about("administer rvs's virtual services with ipvsadm's command line")
        .disable_help_flag(true)
        .disable_version_flag(true);
    for (o, shorts) in table() {
        let mut a = clap::Arg::new(o.long).long(o.long);
        if let Some((first, rest)) = shorts.split_first() {
            a = a.short(*first).short_aliases(rest.to_vec());
        }
        a = match o.arg {
            OptionArg::None => a.action(clap::ArgAction::SetTrue),
            OptionArg::Required => a.num_args(1),
            OptionArg::Optional => a.num_args(0..=1),
        };
        if o.long == "scheduler" {
            a = a.value_parser(clap::builder::PossibleValuesParser::new(
                rvs_api::SCHEDULER_NAMES,
            ));
        }
        cmd = cmd.arg(a);
    }
    for (long, help) in EXTRA {
        cmd = cmd.arg(
            clap::Arg::new(long)
                .long(long)
                .help(help)
                .action(clap::ArgAction::SetTrue),
        );
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parser_option_is_described_and_every_described_option_parses() {
        let described: Vec<String> = help_sections()
            .into_iter()
            .flat_map(|(_, e)| e.into_iter().map(|(l, _)| l))
            .collect();
        for (o, _) in table() {
            assert!(
                described.contains(&o.long.to_owned())
                    || NOT_IN_HELP.iter().any(|(l, _)| *l == o.long),
                "--{} is accepted but `rvsadm -h` does not describe it",
                o.long
            );
        }
        for d in &described {
            assert!(
                options().any(|o| o.long == d) || EXTRA.iter().any(|(l, _)| l == d),
                "`rvsadm -h` describes --{d}, which the parser does not accept"
            );
        }
    }

    #[test]
    fn man_page_has_the_sections_and_options() {
        let m = man_page();
        for needle in [
            ".TH RVSADM 8",
            ".SH SYNOPSIS",
            ".SH COMMANDS",
            ".SH OPTIONS",
            "\\fB\\-t\\fR, \\fB\\-\\-tcp\\-service\\fR \\fIvalue\\fR",
            "\\fB\\-L\\fR, \\fB\\-l\\fR, \\fB\\-\\-list\\fR",
            "\\fB\\-p\\fR, \\fB\\-\\-persistent\\fR [\\fIvalue\\fR]",
            "one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh, the default scheduler is wlc.",
        ] {
            assert!(m.contains(needle), "missing {needle:?} in\n{m}");
        }
    }

    #[test]
    fn completion_command_is_valid() {
        command().debug_assert();
    }
}
