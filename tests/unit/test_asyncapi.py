from services.asyncapi import DOCS, documents


def test_checked_in_asyncapi_documents_match_the_services() -> None:
    stale = [name for name, text in documents().items() if not (DOCS / name).exists() or (DOCS / name).read_text() != text]
    assert stale == [], "run: python -m services.asyncapi"
