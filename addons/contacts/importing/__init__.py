"""Importing contacts from the old system: CSV, XLSX and vCard files, column mapping, dry run,
update by key, all-or-nothing runs (inline or as a background job) and revert.

- `parsing`: bytes -> header and rows (encoding, separator, vCard 2.1 quoted-printable);
- `mapping`: the importable fields, the guessed mapping, one row -> checked values;
- `matching`: update keys and likely duplicates looked up for a whole file at once;
- `runner`: plan, write in one transaction, progress, revert;
- `uploads`: an upload -> a batch (the one door for the page, the tests and the benchmark);
- `models`: the batch, what it changed, its rejected rows, saved mappings.
"""
