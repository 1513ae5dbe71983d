"""cityagent.training"""
