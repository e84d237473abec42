from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0003_run_resumes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="source",
            field=models.CharField(
                choices=[
                    ("web", "Web"),
                    ("api", "API"),
                    ("gateway", "Gateway"),
                    ("experiment", "Experiment"),
                ],
                default="web",
                max_length=12,
            ),
        ),
    ]
