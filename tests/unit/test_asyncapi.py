from services.asyncapi import DOCS, SERVICES, document


def test_checked_in_asyncapi_documents_match_the_services() -> None:
    stale = [s for s in SERVICES if not (DOCS / f"{s}.yaml").exists() or (DOCS / f"{s}.yaml").read_text() != document(s)]
    assert stale == [], "run: python -m services.asyncapi"
