"""The Django admin as a test reads it: signed in, its change lists' rows, and the data a
change page would post back."""

from django.forms import MultiWidget


def signed_in(client, user):
    client.force_login(user)
    return client


def listed(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [str(row) for row in response.context["cl"].result_list]


def form_data(response):
    """What the change page at ``response`` would post back unchanged, inlines included."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None:
                continue
            if isinstance(field.widget, MultiWidget):  # a date and a time, say
                for i, part in enumerate(field.widget.decompress(value)):
                    data[f"{form.add_prefix(name)}_{i}"] = part
            else:
                data[form.add_prefix(name)] = value
    return data
