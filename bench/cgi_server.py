"""The standard library's CGI server, one fresh Python process per request.

The forking path of CGIHTTPRequestHandler switches to 'nobody' when run as root, which
cannot read a virtualenv under /root; the subprocess path runs scripts as the caller.
"""

import http.server
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)


class Handler(http.server.CGIHTTPRequestHandler):
    have_fork = False

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # the default (5) turns a slow server into connect errors


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
