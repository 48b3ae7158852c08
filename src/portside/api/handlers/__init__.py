"""Route handlers: each turns one HTTP request into library calls and the library's answer into a response."""
