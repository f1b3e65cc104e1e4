"""The seed's APScheduler 3 walkthrough (section 2, "使用"), copied with only its import
changed from ``apscheduler.schedulers.blocking`` to ``horae.compat``.

``cron_job`` is the verbatim copy: it raises ``TypeError`` at the interval job, whose
``minute=1`` is a misspelling of ``minutes`` (APScheduler 3 raises there too, without the
hint). ``cron_job_fixed`` is the runnable copy: the same code with only that argument
removed. Two more slips of the seed are kept as they are, because they are what its
users get: the date job's ``next_run_time`` (2019) lies in the past, so it is reported
missed and never runs, and ``clear_job`` names a global ``scheduler`` that the seed never
defines.

The code below is kept byte for byte (hence no formatting, linting or typing).
"""

# mypy: ignore-errors
# ruff: noqa: E501, F821, I001, TID251, UP032, W291
# fmt: off

from horae.compat import BlockingScheduler
import time 

def print_time(x):
    time1 = time.strftime("%Y-%m-%d %H:%M:%S",time.localtime(time.time()))
    print(time1,"模式:{}".format(x))

def clear_job(job_id):
    scheduler.remove_job(job_id)
    print("{}任务被删除了".format(job_id))

def cron_job():
    sched = BlockingScheduler()
    sched.add_job(func=print_time, args=('定时任务', ), trigger='cron', hour='*/2', minute=1, id='cron_job')
    sched.add_job(func=print_time, args=('循环任务', ), trigger='interval', seconds=3, minute=1, id='interval_job')
    sched.add_job(func=clear_job, args=('cron_job', ), trigger='date', next_run_time='2019-06-28 18:09:00', id='date_job')
    sched.start()

def cron_job_fixed():
    sched = BlockingScheduler()
    sched.add_job(func=print_time, args=('定时任务', ), trigger='cron', hour='*/2', minute=1, id='cron_job')
    sched.add_job(func=print_time, args=('循环任务', ), trigger='interval', seconds=3, id='interval_job')
    sched.add_job(func=clear_job, args=('cron_job', ), trigger='date', next_run_time='2019-06-28 18:09:00', id='date_job')
    sched.start()
