"""cityagent.agent"""
