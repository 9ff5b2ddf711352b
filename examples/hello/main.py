"""The smallest function: one `handle(request)`. Returns text."""


def handle(request):
    name = request.query_params.get("name", "world")
    return f"hello, {name}\n"
