//! The lab's one `setsockopt(2)` for plain-data options (an int, a `timeval`, a `linger`): the capture, the
//! decapsulator, the HTTP client, the connection holders and the bench's UDP sink set their socket options through
//! it, so the lab has one unsafe block for them, not six.

use std::io;
use std::os::fd::AsRawFd;

/// Sets option `name` at `level` on `sock` to `value`, whose type must be the one the option takes (`c_int`,
/// `timeval`, `linger`, ...; plain data without pointers: an option that carries a pointer, like
/// `SO_ATTACH_FILTER`'s program, is not for this).
pub fn set<T: Copy>(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` is a live, initialised T for the whole call and `len` is its exact size: the kernel reads
    // `len` bytes from it and writes nothing back. A wrong T for the option is refused by the kernel (EINVAL) or
    // misread as that option's value, never a memory error here.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An abortive close: SO_LINGER on with a zero timeout, so closing the last handle sends a RST instead of a FIN.
pub fn linger_zero(sock: &impl AsRawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set(sock, libc::SOL_SOCKET, libc::SO_LINGER, &l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn get_int(sock: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, a live c_int, and the new length into `len`.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        v
    }

    #[test]
    fn an_int_option_is_set_and_a_bad_one_refused() {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // 6000 bytes: above the kernel's floor (SOCK_MIN_RCVBUF, about 2.3 KiB) and below any rmem_max.
        let asked: libc::c_int = 6000;
        set(&s, libc::SOL_SOCKET, libc::SO_RCVBUF, &asked).expect("SO_RCVBUF");
        // The kernel doubles the value asked for (socket(7)).
        assert_eq!(get_int(&s, libc::SOL_SOCKET, libc::SO_RCVBUF), 2 * asked);
        linger_zero(&s).expect("SO_LINGER on a UDP socket is accepted");
        assert!(set(&s, libc::SOL_SOCKET, -1, &1 as &libc::c_int).is_err());
    }
}
