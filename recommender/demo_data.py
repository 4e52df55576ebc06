"""A synthetic shop the project owns: catalog, users and events with real signal.

Plain numpy, no Django, deterministic for a seed (and the same arguments). Built so a
collaborative model has something to find and a popularity ranking does not find all
of it:

- items have 1-3 of 12 categories and a Zipf-like popularity (a few hits, a long tail);
- each user has a taste over categories drawn from a Dirichlet whose prior depends on
  the user's age group (so user features carry signal for cold users too), and an
  activity level from a log-normal (a few heavy users, many light ones);
- each event picks an item with probability proportional to popularity^0.7 times the
  user's affinity for the item's categories, so two users with the same taste look
  alike and rank the same niche items above global hits;
- the event type walks a funnel (view > click > like > purchase), going deeper when the
  affinity is higher;
- timestamps cover ``days`` days before ``end``, with a weekly rhythm, a slow growth
  trend and a daily pattern (quiet nights, a lunch bump, an evening peak)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

CATEGORIES = (
    "Electronics",
    "Books",
    "Home & Kitchen",
    "Sports & Outdoors",
    "Toys & Games",
    "Beauty",
    "Fashion",
    "Grocery",
    "Garden",
    "Music",
    "Movies",
    "Pet Supplies",
)

EVENT_TYPES = ("view", "click", "like", "purchase")

AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_GROUP_SHARE = (0.18, 0.32, 0.25, 0.15, 0.10)

REGIONS = ("north", "south", "east", "west")

_NOUNS = {
    "Electronics": ("Headphones", "Speaker", "Charger", "Keyboard", "Monitor", "Camera", "Router"),
    "Books": ("Novel", "Cookbook", "Atlas", "Biography", "Anthology", "Field Guide", "Memoir"),
    "Home & Kitchen": ("Blender", "Kettle", "Skillet", "Lamp", "Cushion", "Knife Set", "Toaster"),
    "Sports & Outdoors": ("Tent", "Yoga Mat", "Backpack", "Water Bottle", "Bike Light", "Kayak"),
    "Toys & Games": ("Puzzle", "Board Game", "Building Set", "Plush Bear", "Kite", "Card Game"),
    "Beauty": ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Hair Dryer", "Serum"),
    "Fashion": ("Sneakers", "Jacket", "Scarf", "Sunglasses", "Handbag", "Watch", "Boots"),
    "Grocery": ("Coffee Beans", "Olive Oil", "Green Tea", "Granola", "Dark Chocolate", "Honey"),
    "Garden": ("Watering Can", "Pruner", "Planter", "Seed Kit", "Hose", "Bird Feeder"),
    "Music": ("Vinyl Record", "Ukulele", "Guitar Strings", "Metronome", "Songbook", "Harmonica"),
    "Movies": ("Box Set", "Blu-ray", "Documentary", "Film Classic", "Director's Cut"),
    "Pet Supplies": ("Dog Bed", "Cat Tree", "Leash", "Pet Fountain", "Chew Toy", "Aquarium"),
}
_ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Eco", "Essential", "Everyday", "Handmade", "Heritage",
    "Modern", "Nordic", "Pocket", "Premium", "Pro", "Rustic", "Smart", "Studio", "Travel",
    "Ultra", "Urban", "Vintage", "Wireless", "Golden", "Midnight", "Sunny",
)  # fmt: skip
_BRANDS = (
    "Acme", "Bramble", "Corvid", "Dune", "Ember", "Fjord", "Grove", "Halcyon", "Iris",
    "Juniper", "Kestrel", "Lumen", "Marlow", "Nimbus", "Orchard", "Pebble",
)  # fmt: skip

# Relative traffic per hour of day (UTC): quiet nights, a lunch bump, an evening peak.
_HOURLY = np.array(
    [2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 10, 9, 7, 7, 8, 9, 11, 13, 14, 12, 8, 4], dtype=float
)
# Monday .. Sunday.
_WEEKLY = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])


@dataclass(frozen=True)
class DemoData:
    """Items and users are numbered from 0; events are sorted by time."""

    item_titles: list[str]
    item_categories: list[list[str]]
    item_popularity: np.ndarray  # (items,) sums to 1
    user_features: list[list[str]]
    user_taste: np.ndarray  # (users, categories) rows sum to 1
    event_user: np.ndarray  # (events,) int
    event_item: np.ndarray  # (events,) int
    event_type: np.ndarray  # (events,) index into EVENT_TYPES
    event_time: np.ndarray  # (events,) int64 Unix seconds, ascending


def demo_item_id(index: int) -> str:
    return f"demo-item-{index + 1}"


def demo_user_id(index: int) -> str:
    return f"demo-user-{index + 1}"


def demo_event_id(seed: int, index: int) -> str:
    return f"demo:{seed}:{index}"


def generate_demo_data(
    *, users: int, items: int, events: int, seed: int, days: int, end: datetime
) -> DemoData:
    """The dataset for these arguments; ``end`` (aware) is the latest possible timestamp."""
    if min(users, items, days) < 1 or events < 0:
        raise ValueError("users, items and days must be at least 1, events at least 0")
    rng = np.random.default_rng(seed)
    n_categories = len(CATEGORIES)

    # Catalog: a primary category (some categories are bigger), 0-2 extra ones.
    category_share = rng.dirichlet(np.full(n_categories, 4.0))
    membership = np.zeros((items, n_categories))
    item_categories: list[list[str]] = []
    item_titles: list[str] = []
    for item in range(items):
        primary = rng.choice(n_categories, p=category_share)
        extra_count = rng.choice(3, p=(0.6, 0.3, 0.1))
        others = np.delete(np.arange(n_categories), primary)
        chosen = [primary, *rng.choice(others, size=extra_count, replace=False)]
        membership[item, chosen] = (1.0, *[0.5] * extra_count)
        item_categories.append([CATEGORIES[index] for index in chosen])
        nouns = _NOUNS[CATEGORIES[primary]]
        item_titles.append(
            f"{_BRANDS[rng.integers(len(_BRANDS))]} {_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} "
            f"{nouns[rng.integers(len(nouns))]}"
        )
    membership /= membership.sum(axis=1, keepdims=True)

    # Zipf-like popularity over a random order of the items.
    ranks = rng.permutation(items) + 1
    popularity = ranks**-1.0
    popularity /= popularity.sum()

    # Users: an age group, a region (noise), a taste whose prior depends on the age group.
    age_groups = rng.choice(len(AGE_GROUPS), size=users, p=_AGE_GROUP_SHARE)
    group_prior = rng.dirichlet(np.ones(n_categories), size=len(AGE_GROUPS))
    concentration = 0.4 * n_categories
    taste = np.vstack(
        [rng.dirichlet(group_prior[group] * concentration + 0.02) for group in age_groups]
    )
    regions = rng.integers(len(REGIONS), size=users)
    user_features = [
        [f"age:{AGE_GROUPS[group]}", f"region:{REGIONS[region]}"]
        for group, region in zip(age_groups, regions, strict=True)
    ]

    # Who acts how often, then what each event is about.
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=users)
    event_user = np.sort(rng.choice(users, size=events, p=activity / activity.sum()))
    event_item = np.empty(events, dtype=np.int64)
    event_affinity = np.empty(events)
    weighted_popularity = popularity**0.7
    # Chunks of users keep memory at (chunk x items) whatever the size.
    chunk = max(1, 2_000_000 // items)
    bounds = np.searchsorted(event_user, np.arange(0, users + chunk, chunk))
    for block, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if first == last:
            continue
        block_users = slice(block * chunk, (block + 1) * chunk)
        affinity = taste[block_users] @ membership.T  # (chunk, items)
        weights = weighted_popularity * (affinity**2 + 1e-4)
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        rows = event_user[first:last] - block * chunk
        # One search over all rows at once: row r's CDF is shifted into [r, r + 1].
        flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
        picks = np.searchsorted(flat, rows + rng.random(last - first), side="right")
        picked = np.minimum(picks - rows * items, items - 1)
        event_item[first:last] = picked
        relative = affinity / affinity.max(axis=1, keepdims=True)
        event_affinity[first:last] = relative[rows, picked]

    # The funnel: each step deeper is likelier when the user likes the item more.
    event_type = np.zeros(events, dtype=np.int8)
    for step, (base, boost) in enumerate(((0.3, 0.35), (0.2, 0.3), (0.1, 0.25)), start=1):
        deeper = (event_type == step - 1) & (rng.random(events) < base + boost * event_affinity)
        event_type[deeper] = step

    event_time = _timestamps(rng, events, days=days, end=end)
    order = np.argsort(event_time, kind="stable")
    return DemoData(
        item_titles=item_titles,
        item_categories=item_categories,
        item_popularity=popularity,
        user_features=user_features,
        user_taste=taste,
        event_user=event_user[order],
        event_item=event_item[order],
        event_type=event_type[order],
        event_time=event_time[order],
    )


def _timestamps(rng: np.random.Generator, count: int, *, days: int, end: datetime) -> np.ndarray:
    """Unix seconds within the ``days`` whole days before ``end``'s day, ``end`` excluded."""
    end_seconds = int(end.timestamp())
    first_day = end_seconds // 86_400 - days
    day_numbers = first_day + np.arange(days)
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday
    day_weights = _WEEKLY[weekday] * np.linspace(0.8, 1.2, days)
    day = rng.choice(day_numbers, size=count, p=day_weights / day_weights.sum())
    hour = rng.choice(24, size=count, p=_HOURLY / _HOURLY.sum())
    return (day * 86_400 + hour * 3_600 + rng.integers(3_600, size=count)).astype(np.int64)
