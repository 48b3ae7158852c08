"""Access control and TLS: the `silly`, `htpasswd` and `token` controllers, the built-in token server, TLS."""
