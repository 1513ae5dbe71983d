"""cityagent.serving"""
