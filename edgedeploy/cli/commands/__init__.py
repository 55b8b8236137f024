"""One module per command; COMMANDS is the order ``edgedeploy --help`` lists them in."""

from edgedeploy.cli.commands.bench import bench
from edgedeploy.cli.commands.calibration import calibration
from edgedeploy.cli.commands.compare import compare
from edgedeploy.cli.commands.devices import devices_cmd
from edgedeploy.cli.commands.diagnose import diagnose
from edgedeploy.cli.commands.evaluate import eval_cmd
from edgedeploy.cli.commands.export import export
from edgedeploy.cli.commands.inspect_model import inspect
from edgedeploy.cli.commands.listing import list_cmd
from edgedeploy.cli.commands.recipes import gate, report, run_cmd
from edgedeploy.cli.commands.sign import sign
from edgedeploy.cli.commands.sweep import sweep
from edgedeploy.cli.commands.tune import tune
from edgedeploy.cli.commands.verify import verify

__all__ = ["COMMANDS"]

COMMANDS = (export, eval_cmd, bench, diagnose, inspect, verify, sign, calibration, run_cmd, sweep, tune, gate, compare,
            report, devices_cmd, list_cmd)
