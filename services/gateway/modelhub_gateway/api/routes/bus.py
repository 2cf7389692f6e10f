"""The bus's event contract (AsyncAPI 3.0), for other systems that publish or consume on it.

The document is generated from the services' brokers by scripts/asyncapi.py and shipped with the
gateway (asyncapi.json, the same content as docs/asyncapi.yaml); a unit test keeps both current."""

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from modelhub_gateway.api import asyncapi_page

router = APIRouter(tags=["bus"])
DOCUMENT = Path(__file__).resolve().parents[2] / "asyncapi.json"  # package data at the package top


@cache
def document() -> dict:
    return json.loads(DOCUMENT.read_text())


@router.get(
    "/asyncapi.json",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "the AsyncAPI 3.0 document of the whole bus",
        }
    },
)
async def asyncapi_json() -> JSONResponse:
    """Public: the AsyncAPI 3.0 document of every subject the services publish or consume."""
    return JSONResponse(document())


@router.get(
    "/asyncapi",
    response_class=HTMLResponse,
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "the same document as a readable page",
        }
    },
)
async def asyncapi_html() -> HTMLResponse:
    """Public: the AsyncAPI document as one self-contained HTML page (no CDN)."""
    return HTMLResponse(asyncapi_page.render(document()))
