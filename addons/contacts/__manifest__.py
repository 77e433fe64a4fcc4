{
    "name": "Contacts",
    "version": "1.0.0",
    "summary": "People and companies: the client card, search, segments, duplicates, import",
    "author": "Birga contributors",
    "license": "LGPL-3",
    "category": "Sales",
    "depends": [],
}
