"""Every number in a benchmark report's nested dicts and lists (booleans are not numbers here)."""


def numbers_in(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from numbers_in(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from numbers_in(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree
