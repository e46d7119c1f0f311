"""Minqin county's towns and the 2-digit codes this system gives them.

The 2 digits after ``620621`` in a device ID (the rest of the 8-digit centre
code) are a LOCAL allocation made by the county office for this network. They
are NOT the national statistical township codes (those are 3 digits, e.g.
620621100), and the list below is in the order the county rolled out, not an
official order. Changing a code after devices were issued would orphan their
IDs, so codes are only ever appended.
"""

from __future__ import annotations

MINQIN_TOWNSHIPS: dict[str, str] = {
    "01": "泉山镇",
    "02": "大坝镇",
    "03": "苏武镇",
    "04": "东坝镇",
    "05": "夹河镇",
    "06": "收成镇",
    "07": "红沙梁镇",
    "08": "双茨科镇",
    "09": "薛百镇",
    "10": "重兴镇",
    "11": "西渠镇",
    "12": "东湖镇",
    "13": "昌宁镇",
    "14": "蔡旗镇",
    "15": "大滩镇",
    "16": "南湖镇",
    "17": "中渠镇",
    "18": "三雷镇",
}

_BY_NAME = {name: code for code, name in MINQIN_TOWNSHIPS.items()}


class TownshipError(ValueError):
    pass


def resolve_township(text: str) -> tuple[str, str]:
    """(code, name) for a 2-digit code, a full name (泉山镇) or a name without 镇."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        code = value.zfill(2) if len(value) == 1 else value
        if code in MINQIN_TOWNSHIPS:
            return code, MINQIN_TOWNSHIPS[code]
        raise TownshipError(f"unknown township code {value!r} (Minqin codes are 01..{len(MINQIN_TOWNSHIPS):02d})")
    if value in _BY_NAME:
        return _BY_NAME[value], value
    if value + "镇" in _BY_NAME:
        return _BY_NAME[value + "镇"], value + "镇"
    raise TownshipError(
        f"unknown township {value!r}: give a code 01..{len(MINQIN_TOWNSHIPS):02d} or a name such as 泉山镇"
    )
