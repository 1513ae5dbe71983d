"""cityagent: the Pengcheng deep-learning city agent.

Subpackages: ``cityagent.hub`` (sense), ``cityagent.models`` (think), ``cityagent.training`` (learn),
``cityagent.serving`` (answer) and ``cityagent.agent`` (act and evolve).
"""

from cityagent.errors import CityAgentError
from cityagent.home import home_dir

__version__ = "0.1.0"
__all__ = ["CityAgentError", "__version__", "home_dir"]
