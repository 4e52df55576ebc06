"""The feature-name contract between training and serving."""

from recommender.features import (
    CATEGORY_PREFIX,
    IDENTITY_PREFIX,
    USER_FEATURE_PREFIX,
    category_feature_names,
    user_feature_names,
)


def test_each_kind_of_feature_has_its_own_prefix():
    assert len({IDENTITY_PREFIX, CATEGORY_PREFIX, USER_FEATURE_PREFIX}) == 3
    assert category_feature_names(["drama", "id:x"]) == ["category:drama", "category:id:x"]
    assert user_feature_names(["age:30"]) == ["user:age:30"]


def test_a_category_named_like_an_identity_never_collides_with_one():
    assert set(category_feature_names(["id:42"])).isdisjoint({IDENTITY_PREFIX + "42"})
