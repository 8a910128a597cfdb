"""The embeddable widget's pages and assets (filled in by the widget work)."""

from fastapi import APIRouter

from app.settings import Settings


def build_widget_router(settings: Settings) -> APIRouter:
    return APIRouter()
