//! The connection limit and IPVS's defences from the command line (kept out of args.rs, which rvs-dist also
//! compiles to generate the man page without rvs-core).

use crate::args::{DefenseArgs, default_max_conns};

impl DefenseArgs {
    /// The core's configuration (`mem_total`: physical memory, for the default limit).
    pub fn config(&self, mem_total: Option<u64>) -> rvs_core::DefenseConfig {
        use rvs_core::{DefenseLevel, NoDestConn, QuiescentTemplate};
        let max = self
            .max_conns
            .unwrap_or_else(|| default_max_conns(mem_total.unwrap_or(1 << 30)));
        let max = usize::try_from(max).unwrap_or(usize::MAX - 1);
        let level = |v: u8| DefenseLevel::from_sysctl(v).unwrap_or_default();
        rvs_core::DefenseConfig {
            max_conns: max,
            amemthresh: self
                .amemthresh
                .map_or((max / 8).max(1), |v| usize::try_from(v).unwrap_or(max)),
            am_droprate: self.am_droprate,
            drop_entry: level(self.drop_entry),
            drop_packet: level(self.drop_packet),
            secure_tcp: level(self.secure_tcp),
            expire_nodest_conn: if self.expire_nodest_conn == 1 {
                NoDestConn::Expire
            } else {
                NoDestConn::Drop
            },
            expire_quiescent_template: if self.expire_quiescent_template == 1 {
                QuiescentTemplate::Expire
            } else {
                QuiescentTemplate::Keep
            },
            conn_reuse_mode: self.conn_reuse_mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::args::{Args, default_max_conns};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rvsd").chain(args.iter().copied()))
    }

    #[test]
    fn defences_default_to_ipvs_with_a_memory_derived_limit() {
        let a = parse(&[]).expect("valid");
        let c = a.defense.config(Some(8 << 30));
        assert_eq!(c.max_conns, (8usize << 30) / 4 / 128);
        assert_eq!(c.amemthresh, c.max_conns / 8);
        assert_eq!(c.drop_entry, rvs_core::DefenseLevel::Auto);
        assert_eq!(c.drop_packet, rvs_core::DefenseLevel::Off);
        assert_eq!(c.secure_tcp, rvs_core::DefenseLevel::Off);
        assert_eq!(c.conn_reuse_mode, 1);
        assert_eq!(c.expire_nodest_conn, rvs_core::NoDestConn::Drop);
        assert_eq!(
            default_max_conns(16 << 20),
            65_536,
            "a floor on small machines"
        );
        let a = parse(&[
            "--max-conns",
            "1000",
            "--drop-packet",
            "3",
            "--secure-tcp",
            "1",
            "--expire-nodest-conn",
            "1",
            "--expire-quiescent-template",
            "1",
            "--conn-reuse-mode",
            "0",
            "--amemthresh",
            "50",
        ])
        .expect("valid");
        let c = a.defense.config(None);
        assert_eq!((c.max_conns, c.amemthresh), (1000, 50));
        assert_eq!(c.drop_packet, rvs_core::DefenseLevel::Always);
        assert_eq!(c.secure_tcp, rvs_core::DefenseLevel::Auto);
        assert_eq!(c.expire_nodest_conn, rvs_core::NoDestConn::Expire);
        assert_eq!(
            c.expire_quiescent_template,
            rvs_core::QuiescentTemplate::Expire
        );
        assert_eq!(c.conn_reuse_mode, 0);
        assert!(parse(&["--drop-entry", "4"]).is_err());
        assert!(parse(&["--max-conns", "0"]).is_err());
        assert!(parse(&["--expire-nodest-conn", "2"]).is_err());
    }
}
