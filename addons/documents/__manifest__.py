{
    "name": "Documents",
    "version": "1.0.0",
    "summary": "Products, commercial offers as PDFs from templates, files, sending by e-mail",
    "author": "Birga contributors",
    "license": "LGPL-3",
    "category": "Sales",
    "depends": ["contacts"],
}
