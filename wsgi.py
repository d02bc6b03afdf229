from isd_service.entrypoints.app import create_app

app = create_app()
