//! The control socket's request path on arbitrary bytes, as rvsd reads it: newline framing (`read_line`, any split
//! of the stream into reads), JSON decoding into a `Request`. Must never panic; a request that decodes re-encodes
//! to JSON that decodes to the same request (nothing is lost or invented between rvsadm and rvsd); every rvsadm
//! command line (the words of each line, split as a rules file splits them) parses or fails with a message.
#![no_main]

use std::io::{BufRead, Read};

use libfuzzer_sys::fuzz_target;
use rvs_api::framing::{FramingError, read_line};
use rvs_api::ipvsadm::parse;
use rvs_api::resolve::NoResolver;
use rvs_api::{Request, Response};

/// A reader handing out its bytes in chunks of the sizes the input's first byte picks (short reads).
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(self.data.len()).min(out.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl BufRead for Chunked<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.buf.len() {
            let n = self.step.min(self.data.len());
            self.buf = self.data[..n].to_vec();
            self.data = &self.data[n..];
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..])
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut r = Chunked {
        data: rest,
        step: usize::from(first % 64) + 1,
        buf: Vec::new(),
        pos: 0,
    };
    let mut line = Vec::new();
    let mut lines = 0;
    loop {
        match read_line(&mut r, &mut line) {
            Ok(false) => break,
            Ok(true) => {}
            Err(FramingError::Io(_)) => break, // a half-written last request
            Err(e) => panic!("unexpected framing error {e}"),
        }
        lines += 1;
        assert!(!line.contains(&b'\n'));
        if let Ok(req) = serde_json::from_slice::<Request>(&line) {
            let again = serde_json::to_vec(&req).expect("a request encodes");
            let back: Request = serde_json::from_slice(&again).expect("its encoding decodes");
            assert_eq!(back, req);
        }
            // Responses come back over the same framing (rvsadm's side).
        let _ = serde_json::from_slice::<Response>(&line);
        if let Ok(text) = std::str::from_utf8(&line) {
            let words = rvs_api::rules::split_line(text);
            if let Err(e) = parse(&words, &NoResolver) {
                assert!(!e.stderr_text().is_empty());
            }
        }
    }
    assert!(lines <= rest.len() + 1);
});
