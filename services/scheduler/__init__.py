"""The change of date: outcomes that change with no event (a permit past ``yxqz``)."""
