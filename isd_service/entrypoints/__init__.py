"""Entry points: the Flask app (API and pages), the `isd` command line, the scheduler process
and the webhook sender. They parse input, call the service layer and present its results."""
