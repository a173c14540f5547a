"""Reading the organisation pages: their text, the messages they show, and a person's role
in an organisation after a page changed it."""


def text(response):
    return response.content.decode()


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def role_in(organization, user):
    return organization.members.filter(user=user).values_list("role", flat=True).first()
