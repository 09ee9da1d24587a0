"""What both Flightbase services share: hub authentication, errors, the app
factory, the database and migrations, and the workspace directory."""
