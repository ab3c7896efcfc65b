real_server 203.0.113.15 80 { TCP_CHECK { } }
