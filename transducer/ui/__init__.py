"""What the command line shows people: progress reporters, charts and tables. Returns
rich renderables or strings; never computes a model's result."""
