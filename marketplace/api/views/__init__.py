"""The API's views, one module per resource: parse with a serializer, call a service or selector,
render.

Scopes: reads need `read`; orders and bids `trade`; meter points and readings `meter`; market
rules `manage` (and the community's manager role). Lists come from selectors filtered by the
caller's role; details look up in the same querysets, so what you cannot list is a 404.
"""
