"""Benchmarks of ``realtime``: fan-out latency and CPU, memory per idle connection.

Run from the checkout (``python -m benchmarks.fanout --help``); see
``benchmarks/README.md``. The modules, from the command line down:

- ``fanout``: the command line; ``run``: one run (a transport and N against
  one server); ``figures`` and ``fanout_report``: its figures, table and plot;
  ``fanout_summary``: medians over several runs' JSON files;
- ``servers``: the server under test; ``dialect``: its routes and formats;
- ``pipe``: the controller and its child processes; ``worker`` and
  ``publisher``: those children;
- ``subscription``: what a subscriber records; ``raw_subscribers`` and
  ``aiohttp_subscribers``: the two client kinds;
- ``rawclient``: WebSocket and SSE over a bare socket (the tests use it too);
- ``idle_memory``: server memory per idle connection.
"""
