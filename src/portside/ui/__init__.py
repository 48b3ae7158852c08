"""The web UI's templates, styles and script (package data), and how pages are rendered from them.

Pages are rendered by the server with Jinja2 from the management API's library calls; a few lines of the
UI's own JavaScript copy digests and commands and switch the theme. There is no build step and no
third-party front-end code.
"""
