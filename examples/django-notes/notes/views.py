from django.http import HttpRequest, JsonResponse

from notes.models import Note


def notes(request: HttpRequest) -> JsonResponse:
    """GET: every note; POST: the body becomes a new note."""
    if request.method == "POST":
        Note.objects.create(text=request.body.decode("utf-8", "replace")[:1000])
    return JsonResponse({"notes": list(Note.objects.order_by("id").values_list("text", flat=True))})
