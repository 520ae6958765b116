"""A realistic KEYWORDS_FILE used by the keyword tests: Spanish for Mexico, French for Canada,
and custom ops, the way a business would configure Telnyx's autoresp_configs."""

from __future__ import annotations

from typing import Any

VIP_PROFILE = "vip-profile"

KEYWORDS: list[dict[str, Any]] = [
    {
        "op": "stop",
        "country_code": "MX",
        "keywords": ["PARAR", "BAJA", "ALTO", "CANCELAR"],
        "resp_text": "Has sido dado de baja. No recibirás más mensajes."
        " Responde INICIO para volver.",
    },
    {
        "op": "start",
        "country_code": "MX",
        "keywords": ["INICIO", "ALTA"],
        "resp_text": "Te has suscrito de nuevo. Responde PARAR para darte de baja.",
    },
    {
        "op": "help",
        "country_code": "MX",
        "keywords": ["AYUDA"],
        "resp_text": "Ayuda: escribe PARAR para darte de baja o visita ejemplo.mx/ayuda.",
    },
    {
        "op": "stop",
        "country_code": "CA",
        "keywords": ["ARRÊT", "ARRETER", "DÉSABONNER"],
        "resp_text": "Vous êtes désabonné. Répondez START pour vous réabonner.",
    },
    {
        "op": "info",
        "country_code": "*",
        "keywords": ["INFO", "AIDE"],
        "resp_text": "Example Co alerts: reply STOP to opt out, HELP for help. Msg rates apply.",
    },
    {
        "op": "hours",
        "country_code": "*",
        "keywords": ["HOURS", "HORARIO"],
        "resp_text": "We are open 9am-5pm, Monday to Friday.",
    },
    {
        "op": "stop",
        "country_code": "*",
        "messaging_profile_id": VIP_PROFILE,
        "keywords": ["GOODBYE"],
        "resp_text": "You will not get any more VIP messages from us. Reply START to rejoin.",
    },
]
