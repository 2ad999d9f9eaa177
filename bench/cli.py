"""The command line: ``python -m bench run | compare | sweep | claims | cost | idle | tour |
readme | failover | cross-node | crosscheck | client-check | pool-cost``."""

import typer

from bench.commands import cluster, compose, tools

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.command(name="run")(tools.run)
app.command(name="compare")(compose.compare_command)
app.command(name="sweep")(compose.sweep_command)
app.command(name="claims")(compose.claims_command)
app.command(name="cost")(compose.cost_command)
app.command(name="idle")(compose.idle_command)
app.command(name="tour")(compose.tour_command)
app.command(name="readme")(tools.readme_command)
app.command(name="failover")(cluster.failover_command)
app.command(name="cross-node")(cluster.cross_node_command)
app.command(name="crosscheck")(tools.crosscheck_command)
app.command(name="client-check")(tools.client_check_command)
app.command(name="pool-cost")(tools.pool_cost_command)
