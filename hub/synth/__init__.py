"""A Pengcheng-like synthetic city: roads, zones, traffic, demand, accidents and weather, deterministic by seed."""

from cityagent.hub.synth.memory import synth_hub
from cityagent.hub.synth.params import SynthParams, SynthSpec
from cityagent.hub.synth.writer import synthesize

__all__ = ["SynthParams", "SynthSpec", "synth_hub", "synthesize"]
