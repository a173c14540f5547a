"""The one error type of Wharf's domain: a refusal the caller can act on.

Domain code (access, uploads, labels, yanking, imports, ...) raises a :class:`DomainError`
subclass with an HTTP ``status`` and a ``message`` that names the problem and its fix; it
never builds an HTTP answer itself. The REST API turns every one into its answer in one
place (``registry.api.exception_handler``); web views and the admin show ``message``.

It lives in ``accounts``, the app at the bottom of the layering, so that every app may
raise and catch it; it imports nothing.
"""


class DomainError(Exception):
    """A refusal with an HTTP ``status`` (class default, or given) and a ``message``.

    ``field`` names the request field the message is about: the REST API then answers
    ``{field: [message]}`` as a validation error does, else ``{"detail": message}``.
    """

    status = 400
    field = None

    def __init__(self, message, *, status=None, field=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if field is not None:
            self.field = field

    def body(self):
        """The JSON body of the REST answer."""
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message}
