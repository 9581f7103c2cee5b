"""fl_node"""
