"""Blinker signals the platform services emit, so other services listen instead of being called.

A sender never imports its listeners: the mail service announces `mail_sent`, and the timeline
(or an addon) connects to it. Receivers get the Flask app as the sender and keyword arguments
that are plain data, so a listener in a background worker sees the same thing as one in a
request.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent after an e-mail left through SMTP. Keyword arguments: `message` (the
#: `email.message.EmailMessage` as sent), `recipients` (list of addresses), `record`
#: (`(model, id)` of the record the mail belongs to, or None). The timeline listens to put
#: every sent mail on the record's history.
mail_sent = _signals.signal("birga.mail-sent")

#: Sent before a file attached to a record is deleted, with `attachment` (the
#: `core.storage.Attachment` row). A receiver that must keep the file (an offer's PDF as sent
#: to the client) raises `core.api.AttachmentRefused` with a translated message saying why;
#: the file stays and the person reads the message.
attachment_removing = _signals.signal("birga.attachment-removing")
