# included relative to the including file's directory, in sorted order
real_server 203.0.113.14 80 {
    weight 2
    TCP_CHECK {
        retry 4
    }
}
