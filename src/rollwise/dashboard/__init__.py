"""The web dashboard (`rollwise dashboard`, and served by the local controller): Argo's dashboard
API over the store, live updates by server-sent events, and one self-contained page.

`create_app` (in `server`) builds the aiohttp application; `local_app` builds it over a local
home; `serve` runs an application on a loopback port until stopped.
"""
