"""Packaged data: report templates (top-level reports/) and methods boilerplate (boilerplate/)."""
