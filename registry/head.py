"""HEAD answers without a body, on every route.

Django answers HEAD by running the GET view, and its WSGI handler sends whatever body that
view made; a server that passes it on breaks the connection for the client (it reads the
body as the start of the next answer), and gunicorn logs a warning. RFC 9110 wants the
same headers as for GET, Content-Length included, and no body.
"""


class HeadWithoutBodyMiddleware:
    """Empties the body of every answer to HEAD, keeping its Content-Length. First in
    MIDDLEWARE, so that answers made by the other middleware are emptied too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method != "HEAD":
            return response
        if response.streaming:
            # Nothing answers HEAD with a stream now; should one, it is not read (a file
            # under it is still closed with the response).
            response.streaming_content = []
        elif response.content:
            if not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response
