"""Packaged data: the report templates (reports/) and the methods boilerplate (boilerplate/)."""
