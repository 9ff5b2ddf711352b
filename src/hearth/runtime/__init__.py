"""Code that runs inside an instance: load the user's entrypoint and serve it on a Unix socket."""
