"""The leads API: other systems (a web shop's checkout, a chat widget, a partner portal) post
requests that become leads of the "API" channel.

`POST /pipeline/api/leads` takes JSON with the manual form's fields (`name`, `company`,
`email`, `phone`, `subject`, `message`, `lang`, optional `pipeline_id`) and checks them with
the same form, so a lead is refused for the same reasons, in the caller's language, whichever
way it came. The pipeline's assignment rules pick the owner, as for the web form. Called with
a personal API token (`core.api_tokens`) or from a signed-in browser with its CSRF token.
"""
from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from core.api import current_api_token, db, permission_required, token_api

from .lead_views import LeadForm, _lead_or_404, _pipeline_label, _pipelines
from .leads import create_lead
from .models import Lead
from .views import bp

#: The JSON keys the form knows (the form's `company` is the lead's `company_name`).
FIELDS = ("name", "company", "email", "phone", "subject", "message", "lang")


def lead_json(lead: Lead) -> dict[str, Any]:
    return {"id": lead.id, "status": lead.status, "channel": lead.channel,
            "pipeline_id": lead.pipeline_id, "owner_id": lead.owner_id, "name": lead.name,
            "company": lead.company_name, "email": lead.email, "phone": lead.phone,
            "subject": lead.subject, "message": lead.message, "lang": lead.lang,
            "partner_id": lead.partner_id, "deal_id": lead.deal_id,
            "created_at": lead.created_at.isoformat() if lead.created_at else None,
            "url": url_for("pipeline.lead", lead_id=lead.id, _external=True)}


def _refused(errors: dict[str, list[str]], status: int = 422) -> Any:
    response = jsonify({"ok": False, "code": "invalid",
                        "error": _("The lead was not created: check the fields."),
                        "errors": errors})
    response.status_code = status
    return response


@bp.route("/api/leads", methods=["POST"])
@token_api
@permission_required("pipeline.write")
def api_lead_create():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _refused({"": [_("Send a JSON object.")]}, 400)
    values = {key: data[key] for key in FIELDS if data.get(key) not in (None, "")}
    if not all(isinstance(value, str) for value in values.values()):
        return _refused({key: [_("Send text.")] for key, value in values.items()
                         if not isinstance(value, str)})
    pipelines = _pipelines()  # active, in order: the first is the default pipeline
    pipeline_id = data.get("pipeline_id")
    if pipeline_id in (None, ""):
        pipeline_id = pipelines[0].id if pipelines else None
    form = LeadForm(formdata=MultiDict({**values, "pipeline": str(pipeline_id),
                                        "channel": "api"}), meta={"csrf": False})
    form.pipeline.choices = [(p.id, _pipeline_label(p)) for p in pipelines]
    form.channel.choices = [("api", "api")]
    if not form.validate():
        return _refused({_json_key(name): [str(e) for e in errors]
                         for name, errors in form.errors.items()})
    # Which program sent it, for whoever wonders later where a lead came from.
    token = current_api_token()
    payload = {"api_token": token.name} if token is not None else {}
    chosen = next(p for p in pipelines if p.id == form.pipeline.data)
    lead = create_lead(channel="api", pipeline=chosen,
                       name=form.name.data, company_name=form.company.data,
                       email=form.email.data, phone=form.phone.data,
                       subject=form.subject.data, message=form.message.data,
                       lang=form.lang.data or None, country=_country(data),
                       payload=payload, author=current_user)
    db.session.commit()
    response = jsonify({"ok": True, **lead_json(lead)})
    response.status_code = 201
    response.headers["Location"] = url_for(".api_lead", lead_id=lead.id, _external=True)
    return response


@bp.route("/api/leads/<int:lead_id>")
@token_api
@permission_required("pipeline.read")
def api_lead(lead_id: int):
    return jsonify(lead_json(_lead_or_404(lead_id)))


def _json_key(field: str) -> str:
    return "pipeline_id" if field == "pipeline" else field


def _country(data: dict[str, Any]) -> str | None:
    country = data.get("country")
    return country.strip().upper()[:2] if isinstance(country, str) and country.strip() else None

