"""Tasks over HTTP (filled in below)."""
from fastapi import APIRouter

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
