"""A small population with planted duplicates and look-alikes that are different people.

120 background customers with distinct names, phones and (some) emails, plus:

- 王小明 (A), his copy in traditional characters with the phone typed ``0086 138 1234 5678``
  (A2), and a pinyin copy ``Xiaoming Wang`` sharing his email in upper case (A3);
- 李娜 (B) and her copy with day and month of birth swapped, moved to another city, the same
  phone written ``+86 139-8765-4321`` (B2);
- 欧阳娜娜 (C) and a copy with one character mistyped (欧阳娜纳) and the same email (C2);
- two different people called 张伟 in the same city (Z1, Z2): different birth dates and phones;
- two different people called 陈静 born the same year (W1, W2), different phones and cities.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from rapport.demo import vocab
from rapport.ingest import normalise
from tests.factories import Factory

CITIES = (
    ("上海市", "上海市"),
    ("浙江省", "杭州市"),
    ("北京市", "北京市"),
    ("广东省", "广州市"),
    ("四川省", "成都市"),
)


@dataclass
class Planted:
    ids: dict[str, int]
    background: list[int]

    def expected_clusters(self) -> list[list[int]]:
        i = self.ids
        return sorted(
            [sorted([i["A"], i["A2"], i["A3"]]), sorted([i["B"], i["B2"]]), sorted([i["C"], i["C2"]])]
        )


def _person(
    f: Factory,
    name: str,
    birth: dt.date | None,
    gender: str | None,
    city: tuple[str, str],
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    owner_id: int | None = None,
    team_id: int | None = None,
    **kw: object,
) -> int:
    cid = f.customer(
        owner_id=owner_id,
        team_id=team_id,
        display_name=name,
        birth_date=birth,
        gender=gender,
        region=city[0],
        city=city[1],
        **kw,
    )
    for p in phones:
        e164 = normalise.phone(p)
        f.contact(cid, "phone", p, value_normalized=e164)
    for e in emails:
        f.contact(cid, "email", e, value_normalized=normalise.email(e))
    return cid


def plant(f: Factory, *, team_id: int | None = None, owner_id: int | None = None) -> Planted:
    rng = random.Random(20261201)
    names: set[str] = {"王小明", "李娜", "欧阳娜娜", "张伟", "陈静"}
    background: list[int] = []
    chars = [g for g, _ in vocab.GIVEN_MALE + vocab.GIVEN_FEMALE]
    while len(background) < 120:
        family = vocab.SURNAMES[rng.randrange(len(vocab.SURNAMES))][0]
        name = family + "".join(rng.choice(chars) for _ in range(rng.choice((1, 2))))
        if name in names:
            continue
        names.add(name)
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
        phone = f"+86139{rng.randrange(10_000_000, 99_999_999)}"
        emails = (f"user{len(background)}@example.com",) if rng.random() < 0.5 else ()
        background.append(
            _person(
                f, name, birth, rng.choice(("female", "male")), CITIES[rng.randrange(5)], (phone,), emails
            )
        )
    kw = {"team_id": team_id, "owner_id": owner_id}
    ids = {
        "A": _person(
            f,
            "王小明",
            dt.date(1985, 3, 2),
            "male",
            CITIES[0],
            ("+8613812345678",),
            ("xiaoming.wang@example.cn",),
            **kw,
        ),
        "A2": _person(f, "王曉明", dt.date(1985, 3, 2), "male", CITIES[0], ("0086 138 1234 5678",)),
        "A3": _person(
            f, "Xiaoming Wang", dt.date(1985, 3, 2), None, CITIES[0], (), ("XIAOMING.WANG@EXAMPLE.CN",)
        ),
        "B": _person(f, "李娜", dt.date(1990, 7, 11), "female", CITIES[1], ("13987654321",), **kw),
        "B2": _person(f, "李娜", dt.date(1990, 11, 7), "female", CITIES[3], ("+86 139-8765-4321",)),
        "C": _person(
            f, "欧阳娜娜", dt.date(2000, 6, 15), "female", CITIES[2], (), ("nana@example.org",), **kw
        ),
        "C2": _person(f, "欧阳娜纳", dt.date(2000, 6, 15), None, CITIES[2], (), ("Nana@Example.org",)),
        "Z1": _person(f, "张伟", dt.date(1980, 1, 5), "male", CITIES[0], ("13700000001",)),
        "Z2": _person(f, "张伟", dt.date(1992, 9, 30), "male", CITIES[0], ("13700000002",)),
        "W1": _person(f, "陈静", dt.date(1988, 4, 1), "female", CITIES[1], ("13600000001",)),
        "W2": _person(f, "陈静", dt.date(1988, 10, 20), "female", CITIES[4], ("13600000002",)),
    }
    return Planted(ids, background)
