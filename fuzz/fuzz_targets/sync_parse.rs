//! rvs_sync::parse and the backup's receive path on arbitrary bytes: never panics; a message
//! that parses re-encodes (as version 1) into a message that parses to the same entries; a
//! rejected datagram reaches no director.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_sync::{Installed, MessageBuilder, Receiver, Skipped, SyncConn, SyncTarget, flags, parse};

struct Count(usize);

impl SyncTarget for Count {
    fn install(&mut self, c: &SyncConn<'_>) -> Result<Installed, Skipped> {
        assert_eq!(c.flags & !(flags::BACKUP_MASK | flags::SYNC), 0);
        self.0 += 1;
        Ok(Installed::Created)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let parsed = parse(data, &mut out);
    let mut r = Receiver::new(0);
    let mut n = Count(0);
    let received = r.receive(data, &mut n);
    assert_eq!(parsed.is_ok(), received.is_ok());
    let Ok(h) = parsed else {
        assert!(out.is_empty());
        assert_eq!(n.0, 0, "a rejected datagram reached the director");
        return;
    };
    assert_eq!(usize::from(h.size), data.len());
    assert_eq!(usize::from(h.nr_conns), out.len());
    assert!(n.0 <= out.len());
    // Re-encode as version 1 (mixed-family entries cannot be encoded: skipped).
    let mut b = MessageBuilder::new(h.syncid, 65_507);
    let mut kept = Vec::new();
    for c in &out {
        let mut c = *c;
        c.flags &= !flags::HASHED;
        if b.push(&c).is_ok() {
            kept.push(c);
        }
    }
    let m = b.take();
    let mut again = Vec::new();
    parse(&m, &mut again).expect("a built message parses");
    assert_eq!(again, kept);
});
