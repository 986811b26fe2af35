"""The no-op task and actor that ``fray bench tasks|actors --runtime python``
runs (imported by the bench's runtime, not by default)."""

from .._decorators import actor, task


@task("py.bench.noop")
def noop(_arg: object) -> None:
    return None


@actor("py.bench.Echo")
class Echo:
    def noop(self) -> None:
        return None

    def echo(self, x: object) -> object:
        return x
