//! A rules file (`ipvsadm -S` format, rvsd --rules and rvsadm -R) on arbitrary text: never panics; an error names a
//! line of the file, quotes that line and says what is wrong; a file that parses keeps its commands in line order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_api::resolve::NoResolver;
use rvs_api::rules::parse_lines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_lines(&text, &NoResolver) {
        Ok(cmds) => {
            let mut last = 0;
            for (line, cmd) in &cmds {
                assert!(*line > last, "commands out of line order");
                last = *line;
                assert!(cmd.is_change(), "a rules file holds changes only: {cmd:?}");
            }
            assert!(last <= text.lines().count());
        }
        Err(e) => {
            let n = text.lines().count();
            assert!(e.line >= 1 && e.line <= n, "line {} of {n}", e.line);
            assert_eq!(e.text, text.lines().nth(e.line - 1).unwrap_or_default());
            assert!(!e.reason.is_empty());
            let x = e.explain();
            assert!(x.starts_with(&format!("line {}: \"", e.line)), "{x}");
        }
    }
});
