"""gru-suite applications. Each subpackage with a `commands` module joins the
command registry (`apps.registry`) when the `gru-suite` CLI starts."""
